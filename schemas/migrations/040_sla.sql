-- 040_sla: a workflow's `sla` (run/alerts.c). A run still unfinished past its SLA raises
-- ratchet.alert.sla_exceeded once: sla_alerted_at is set in the transaction that stores
-- the alert event, so any number of serve processes, restarts included, raise it once.
alter table ratchet.runs add column sla_alerted_at timestamptz;

-- A workflow duration ("500ms", "30s", "15m", "2h", "7d"; engine/core/util.c
-- rt_duration_parse) in milliseconds; null when it is not one. The SLA is read from the
-- run's pinned definition, so editing a workflow never moves an SLA already running.
create function ratchet.duration_ms(d text) returns bigint
    language sql immutable strict parallel safe
    as $$ select (m[1])::bigint * case m[2] when 'ms' then 1 when 's' then 1000 when 'm' then 60000
                                            when 'h' then 3600000 else 86400000 end
          from regexp_match(d, '^([0-9]{1,12})(ms|s|m|h|d)$') m $$;
