-- The deployment's identity: ids of the events this engine makes are
-- "ratchet:<instance>:<kind>:...". Producers may not use that namespace, and another
-- deployment's engine events (a shared broker) never collide with this one's.
create table ratchet.instance (
    one boolean primary key default true check (one),
    id  text not null default substr(md5(random()::text || clock_timestamp()::text), 1, 16)
);
insert into ratchet.instance default values;
