-- Which certificate a renewal replaced, so renewing revokes the old one (after an overlap) and a second
-- renewal from the same certificate revokes the first one's result: only one lineage survives a theft.
ALTER TABLE agent_certificates ADD COLUMN renewed_from text;
CREATE INDEX agent_certificates_renewed_from ON agent_certificates (renewed_from) WHERE renewed_from IS NOT NULL;
