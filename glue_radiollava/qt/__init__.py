"""The glue-qt front end (toolbar tools, assistant panel). Imports Qt; the core never imports this."""
