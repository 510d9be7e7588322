-- FHIR Bulk Data export jobs, shared by every process on the database.
-- request, progress and output hold resource type names, counts and ids
-- only, never PHI; key is the job's file key wrapped by the KEK kek_id.
-- Times are unix microseconds; expires is when the job and its files are
-- deleted.
CREATE TABLE export_jobs (
    id       {{text}} PRIMARY KEY,
    client   {{text}} NOT NULL,
    user_id  {{text}} NOT NULL,
    request  {{text}} NOT NULL,
    state    {{text}} NOT NULL,
    progress {{text}} NOT NULL,
    output   {{blob}} NOT NULL,
    kek_id   {{text}} NOT NULL,
    wrapped  {{blob}} NOT NULL,
    created  BIGINT NOT NULL,
    updated  BIGINT NOT NULL,
    expires  BIGINT NOT NULL
);
CREATE INDEX export_jobs_expires ON export_jobs (expires);
