# Data package: task catalogue (tasks/*.yaml), installed as glue_radiollava.resources.
