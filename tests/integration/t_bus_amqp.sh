#!/usr/bin/env bash
# RabbitMQ transport (engine/bus_amqp.c, engine/consumer.c) against the real broker that
# scripts/dev.sh test started, in a vhost of its own: topology declared idempotently
# (durable topic exchange, ingest queue dead-lettering to ratchet.events.dlx and its
# queue, one binding per pattern with * and > translated), 1,000 messages published with
# pipelined confirms, fetched, acked after the "commit" and gone from the broker
# (rabbitmqctl), redelivery after reconnect, nack, dead-lettering, a 10 MiB message
# dead-lettered by the consumer while the next one is stored, and a broker restart in the
# middle of a stream with nothing lost. Prints the publish throughput figures.
source "$(dirname "$0")/lib.sh"
rt_test_init bus_amqp
rt_use_amqp

BUSCHECK=$(dirname "$RATCHET_BIN")/tests/buscheck
[[ -x $BUSCHECK ]] || rt_fail "buscheck is not built next to $RATCHET_BIN (expected $BUSCHECK)"
SVC=$RATCHET_SOURCE_DIR/scripts/lib/services.sh
ctl() { rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" "$@"; }
# For buscheck: the broker's own view, through rabbitmqctl.
CTL="source '$SVC' && rt_rabbitmqctl '$RATCHET_TEST_STATE_DIR'"
LQ="list_queues --silent -p '$RT_TEST_VHOST' name messages_ready messages_unacknowledged"

export BUSCHECK_URL=$RATCHET_AMQP_URL
export BUSCHECK_NS=${RT_TEST_VHOST#t_}
export BUSCHECK_STATS_CMD="bash -c \"$CTL $LQ\" | awk '\$1 == \"{Q}\" { print \$2, \$3 }'"
export BUSCHECK_DEAD_CMD="bash -c \"$CTL $LQ\" | awk '\$1 == \"ratchet.events.dead\" { print \$2 }'"
export BUSCHECK_RESTART="bash -c \"source '$SVC' && rt_rabbit_restart '$RATCHET_TEST_STATE_DIR'\" >&2"

rc=0
"$BUSCHECK" basic throughput redeliver deadletter oversize restart >"$T/buscheck.log" 2>&1 || rc=$?
cat "$T/buscheck.log"
rt_check_log "$T/buscheck.log"
((rc == 0)) || rt_fail "buscheck failed (exit $rc); see above"

# Credentials never appear in what ratchet logs.
if grep -n "guest:guest" "$T/buscheck.log"; then rt_fail "the AMQP password appears in the log"; fi

# The topology as the broker sees it.
ex=$(ctl list_exchanges --silent -p "$RT_TEST_VHOST" name type durable)
grep -qP '^ratchet\.events\ttopic\ttrue$' <<<"$ex" || rt_fail "exchange ratchet.events is not a durable topic exchange: $ex"
grep -qP '^ratchet\.events\.dlx\tfanout\ttrue$' <<<"$ex" || rt_fail "exchange ratchet.events.dlx missing: $ex"
qs=$(ctl list_queues --silent -p "$RT_TEST_VHOST" name durable arguments)
grep -P '^ratchet\.ingest\ttrue\t' <<<"$qs" | grep -q 'x-dead-letter-exchange.*ratchet\.events\.dlx' ||
  rt_fail "queue ratchet.ingest is not durable with x-dead-letter-exchange=ratchet.events.dlx: $qs"
grep -qP '^ratchet\.events\.dead\ttrue' <<<"$qs" || rt_fail "queue ratchet.events.dead missing: $qs"
bi=$(ctl list_bindings --silent -p "$RT_TEST_VHOST" source_name destination_name routing_key)
for key in 'basic.*.created' 'basic.x.#' 'tput.#' 'restart.*.done'; do
  grep -qF "$(printf 'ratchet.events\tratchet.ingest\t%s' "$key")" <<<"$bi" || rt_fail "binding $key missing: $bi"
done
grep -qP '^ratchet\.events\.dlx\tratchet\.events\.dead\t' <<<"$bi" || rt_fail "dead-letter binding missing: $bi"
# Nothing left behind: ingest empty; dead holds exactly what the scenarios dead-lettered
# (1 in deadletter, 2 in oversize, 3 poison in restart).
lq=$(ctl list_queues --silent -p "$RT_TEST_VHOST" name messages_ready messages_unacknowledged)
grep -qP '^ratchet\.ingest\t0\t0$' <<<"$lq" || rt_fail "ratchet.ingest is not empty: $lq"
grep -qP '^ratchet\.events\.dead\t6\t0$' <<<"$lq" || rt_fail "ratchet.events.dead should hold 6: $lq"
grep '^FIGURE' "$T/buscheck.log" | sed 's/^/t_bus_amqp: /'
