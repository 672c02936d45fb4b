#!/usr/bin/env bash
# The ingest queue's classic queue version (engine/bus/bus_amqp.c, declare_ingest_queue):
# a queue ratchet makes is declared with x-queue-version 2; a queue that already exists
# without it (made by an earlier ratchet: the broker refuses a re-declaration with another
# version, 406 PRECONDITION_FAILED) is kept as it is, with one warning, and events still
# flow through it (buscheck basic: publish with confirms, fetch, ack, nothing left).
source "$(dirname "$0")/lib.sh"
rt_test_init amqp_queue_version
rt_use_amqp

rt_use_buscheck_amqp
ctl() { rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" "$@"; }
Q=ratchet.ingest # buscheck's scenarios use the default queue

queue_args() { # the ingest queue's arguments as rabbitmqctl prints them
  ctl list_queues --silent -p "$RT_TEST_VHOST" name arguments | awk -v q="$Q" '$1 == q { $1 = ""; print }'
}
WARNING="queue $Q was declared without x-queue-version 2"

# 1. An existing queue made the way ratchet declared it before (no x-queue-version): a
#    version 1 classic queue. rabbitmqctl cannot declare queues, so the broker's own
#    declare function is called.
ctl eval "rabbit_amqqueue:declare(rabbit_misc:r(<<\"$RT_TEST_VHOST\">>, queue, <<\"$Q\">>), true, false,
  [{<<\"x-dead-letter-exchange\">>, longstr, <<\"ratchet.events.dlx\">>}], none, <<\"test\">>)." >"$T/declare.log" 2>&1 ||
  rt_fail "could not pre-declare $Q: $(cat "$T/declare.log")"
before=$(queue_args)
[[ $before == *x-dead-letter-exchange* && $before != *x-queue-version* ]] ||
  rt_fail "the pre-declared queue has unexpected arguments: $before"

rc=0
"$BUSCHECK" basic >"$T/legacy.log" 2>&1 || rc=$?
cat "$T/legacy.log"
rt_check_log "$T/legacy.log"
((rc == 0)) || rt_fail "buscheck basic failed on the existing version 1 queue (exit $rc)"
n=$(grep -c -F "$WARNING" "$T/legacy.log" || true)
((n == 1)) || rt_fail "expected the kept-as-it-is warning once on the existing queue, saw it $n times"
after=$(queue_args)
[[ $after == "$before" ]] || rt_fail "the existing queue's arguments changed: '$before' -> '$after'"
echo "existing queue kept with its arguments ($after), one warning, events flowed"

# 2. No queue yet: ratchet makes it with x-queue-version 2, without any warning.
ctl delete_queue -p "$RT_TEST_VHOST" "$Q" >/dev/null || rt_fail "could not delete $Q"
rc=0
"$BUSCHECK" basic >"$T/fresh.log" 2>&1 || rc=$?
cat "$T/fresh.log"
rt_check_log "$T/fresh.log"
((rc == 0)) || rt_fail "buscheck basic failed on a queue ratchet declared (exit $rc)"
! grep -q -F "$WARNING" "$T/fresh.log" || rt_fail "a warning about the queue version on a queue ratchet made"
args=$(queue_args)
[[ $args == *'{"x-queue-version",2}'* && $args == *x-dead-letter-exchange* ]] ||
  rt_fail "the queue ratchet declared lacks x-queue-version 2 or its dead-letter exchange: $args"
echo "new queue declared with $args"
