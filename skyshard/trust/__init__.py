"""skyshard's side of the ledger: its event types and payloads, trust scores, contracts,
settlement, audits and the SQL mirror."""
