-- DELETE one ledger row
DELETE FROM ledger WHERE account = 'ops-eu';
