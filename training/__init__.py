"""Teaching 3DPE: fast adaptation to a new style (`live3dpe adapt`) and the distillation trainer (`live3dpe train`)."""
