"""The resource broker's migration side: protocol state machine, ops tables, routing table."""
