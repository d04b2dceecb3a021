"""Editing engines (classic, 3dpe) behind one interface, and the stages that drive them."""
