"""Training: simulator, dataset builders, fine-tuning and model recipes (built on glue_radiollava.core)."""
