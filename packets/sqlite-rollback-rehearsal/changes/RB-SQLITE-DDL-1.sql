-- CREATE INDEX on ledger(account)
CREATE INDEX ledger_account ON ledger(account);
