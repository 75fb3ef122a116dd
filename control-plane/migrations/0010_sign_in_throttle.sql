-- Sign-in attempts counted atomically per (account, address) pair and per address, so the limit holds under
-- concurrency and across replicas, and a stranger cannot lock an account out from another address.
CREATE TABLE sign_in_throttle (
    key          text PRIMARY KEY,
    attempts     integer NOT NULL,
    window_start timestamptz NOT NULL
);
