-- Agents cut off for longer than their certificate's lifetime get a new one with the expired certificate's key
-- (the Recover call), recorded as issued via recovery.
ALTER TABLE agent_certificates DROP CONSTRAINT agent_certificates_issued_via_check;
ALTER TABLE agent_certificates
    ADD CONSTRAINT agent_certificates_issued_via_check CHECK (issued_via IN ('bootstrap', 'renewal', 'recovery'));
