"""Where state and data live at scale: the operational-state backend switch and read snapshots."""
