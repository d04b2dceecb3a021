"""The quality meter: runs the real chain on a clip at several virtual-camera yaws and measures the edit the way
the 3DPE paper does (identity kept, multi-view consistency) plus how much of the head it changes, flicker,
the untouched background and pose accuracy. Above `stages/`; nothing in the product imports it."""
