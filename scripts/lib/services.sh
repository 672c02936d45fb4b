# shellcheck shell=bash disable=SC1091,SC2015
# scripts/lib/services.sh — start, stop and restart PostgreSQL, NATS (JetStream) and
# RabbitMQ on 127.0.0.1, each instance living in one state directory DIR.
#
# Sourced by scripts/dev.sh and by the integration tests (tests/integration/lib.sh).
# Needs root (PostgreSQL runs as the `postgres` user through runuser).
#
#   rt_pg_start DIR [PORT]                 rt_pg_stop DIR      rt_pg_restart DIR
#   rt_nats_start DIR [PORT [MONPORT]]     rt_nats_stop DIR    rt_nats_restart DIR
#   rt_rabbit_start DIR [PORT]             rt_rabbit_stop DIR  rt_rabbit_restart DIR
#   rt_services_start DIR [PGPORT NATSPORT NATSMON AMQPPORT]   (all three, rabbit in parallel)
#   rt_services_stop DIR                   rt_services_status DIR
#   rt_free_port DIR [PREFERRED]           rt_rabbitmqctl DIR ARGS...
#   rt_amqp_check URL                      (AMQP 0-9-1 login + vhost open, no client library)
#
# A PORT argument is a preference: it is used when free, otherwise a free port is
# picked. Ports once chosen are saved in DIR/env and reused by later starts and by the
# restart functions (which keep ports and data). DIR/env holds every port, pid file and
# URL as `export KEY=VALUE` lines: `source DIR/env` in another shell, then call the stop
# or restart functions with the same DIR.
#
# Exported after a start: RT_PG_PORT RT_PG_URL, RT_NATS_PORT RT_NATS_MON_PORT RT_NATS_URL,
# RT_AMQP_PORT RT_AMQP_URL (and the RT_RABBIT_* values needed to stop or restart it).
#
# Messages go to stderr, prefixed with $RT_LOG_PREFIX (default "services:").

RT_PY=/usr/bin/python3
[[ -x $RT_PY ]] || RT_PY=python3
RT_RABBIT_BIN=${RT_RABBIT_BIN:-/usr/lib/rabbitmq/bin}
RT_PORT_REGISTRY=${RT_PORT_REGISTRY:-/tmp/ratchet-ports}

rt_log() { echo "${RT_LOG_PREFIX:-services:} $*" >&2; }
rt_die() { rt_log "error: $*"; return 1; }

rt__now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
rt__secs_since() { # START_MS -> "1.23"
  local d=$(($(rt__now_ms) - $1))
  printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10))
}

rt__absdir() { # creates DIR if needed, prints its absolute path
  [[ -n ${1:-} ]] || { rt_die "a state directory argument is required"; return 1; }
  mkdir -p "$1" && (cd "$1" && pwd -P)
}

# --- DIR/env: the state file ----------------------------------------------------------

rt_env_get() { # DIR KEY -> value (empty when unset)
  [[ -f $1/env ]] || return 0
  # The key is unset first: a value exported in this shell (another stack's) must not
  # show through when DIR/env lacks it.
  (set +eu; unset "$2"; source "$1/env" >/dev/null 2>&1; printf '%s' "${!2-}")
}

rt_env_set() { # DIR KEY VALUE [KEY VALUE...]: updates DIR/env and exports in this shell
  local dir=$1; shift
  local -a keys=() lines=()
  while (($# >= 2)); do
    keys+=("$1")
    lines+=("$(printf 'export %s=%q' "$1" "$2")")
    export "$1=$2"
    shift 2
  done
  (
    flock 9
    local tmp="$dir/env.tmp.$$" k pat=""
    for k in "${keys[@]}"; do pat+="${pat:+|}$k"; done
    { [[ -f $dir/env ]] && grep -Ev "^export ($pat)=" "$dir/env"; printf '%s\n' "${lines[@]}"; } >"$tmp" || true
    mv -f "$tmp" "$dir/env"
  ) 9>"$dir/.env.lock"
}

rt__load_env() { # exports every KEY of DIR/env into this shell
  [[ -f $1/env ]] || return 0
  set -a
  # shellcheck disable=SC1091
  source "$1/env"
  set +a
}

# --- processes and ports --------------------------------------------------------------

rt_pid_alive() { # PID: running and not a zombie
  local pid=${1:-} st
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z && ${st:0:1} != X ]]
}

rt_pidfile_pid() { # FILE -> pid or nothing; never fails
  if [[ -s ${1:-} ]]; then head -n1 "$1" | tr -dc 0-9; fi
  return 0
}

rt_tcp_open() { # PORT: something accepts connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a free TCP port on 127.0.0.1 and reserves it for DIR in $RT_PORT_REGISTRY, so
# that stacks started at the same time on this machine do not pick the same port. The
# preferred port is returned when it is free (and not reserved by another live DIR).
# Random picks come from below the kernel's ephemeral range. A reservation whose DIR no
# longer exists is stale and reclaimed.
rt_free_port() { # DIR [PREFERRED]
  local dir; dir=$(rt__absdir "$1") || return 1
  "$RT_PY" - "$RT_PORT_REGISTRY" "$dir" "${2:-}" <<'PY'
import fcntl, os, random, socket, sys
reg, owner, pref = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(reg, exist_ok=True)
try:
    os.chmod(reg, 0o1777)
except OSError:
    pass
lock = open(os.path.join(reg, ".lock"), "a")
fcntl.flock(lock, fcntl.LOCK_EX)

for name in os.listdir(reg):  # sweep reservations whose directory is gone
    if name.isdigit():
        try:
            if not os.path.isdir(open(os.path.join(reg, name)).read().strip()):
                os.unlink(os.path.join(reg, name))
        except OSError:
            pass

def reserved_by_other(p):
    try:
        o = open(os.path.join(reg, str(p))).read().strip()
    except OSError:
        return False
    return o != owner and os.path.isdir(o)

def bindable(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
    try:
        s.bind(("127.0.0.1", p))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()

def ok(p):
    return 1024 <= p <= 65535 and not reserved_by_other(p) and bindable(p)

try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 32768
hi = max(min(lo, 65535) - 1, 12000)
port = 0
if pref and ok(int(pref)):
    port = int(pref)
else:
    for _ in range(2000):
        p = random.randint(10000, hi)
        if ok(p):
            port = p
            break
if not port:
    sys.exit("no free port found")
with open(os.path.join(reg, str(port)), "w") as f:
    f.write(owner + "\n")
print(port)
PY
}

rt__port_release() { # DIR PORT...: drops reservations DIR holds
  local dir=$1 p; shift
  for p in "$@"; do
    [[ -n $p && -f $RT_PORT_REGISTRY/$p ]] || continue
    [[ $(cat "$RT_PORT_REGISTRY/$p" 2>/dev/null) == "$dir" ]] && rm -f "$RT_PORT_REGISTRY/$p"
  done
  return 0
}

# Port for KEY in DIR: the saved one (strict: must be free, waits up to 15 s for it),
# else the preferred one if free, else any free one.
rt__port_for() { # DIR KEY PREFERRED STRICT
  local dir=$1 key=$2 pref=$3 strict=$4 saved p i
  saved=$(rt_env_get "$dir" "$key")
  if [[ -n $saved ]]; then
    for ((i = 0; i < 150; i++)); do
      p=$(rt_free_port "$dir" "$saved") || return 1
      [[ $p == "$saved" ]] && { echo "$p"; return 0; }
      rt__port_release "$dir" "$p"
      [[ $strict == 1 ]] || break
      sleep 0.1
    done
    [[ $strict == 1 ]] && { rt_die "$key $saved is still in use; cannot restart on the same port"; return 1; }
    rt_log "$key $saved is in use now; picking another port"
  fi
  rt_free_port "$dir" "$pref"
}

rt__wait_pid_exit() { # PID TIMEOUT_S
  local pid=$1 n=$(($2 * 20))
  while rt_pid_alive "$pid" && ((n-- > 0)); do sleep 0.05; done
  ! rt_pid_alive "$pid"
}

rt__kill_pid() { # PID TIMEOUT_S: SIGTERM, wait, SIGKILL
  local pid=$1
  rt_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  rt__wait_pid_exit "$pid" "$2" && return 0
  rt_log "pid $pid did not exit within $2 s of SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rt__wait_pid_exit "$pid" 5
}

# --- PostgreSQL -----------------------------------------------------------------------

rt__pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -x $d/pg_ctl ]] || { rt_die "PostgreSQL server binaries not found (apt-get install postgresql)"; return 1; }
  echo "$d"
}

rt__as_postgres() { (cd / && runuser -u postgres -- "$@"); }

rt__pg_running() { # DIR
  local data; data=$(rt_env_get "$1" RT_PG_DATA)
  [[ -n $data && -f $data/postmaster.pid ]] || return 1
  rt_pid_alive "$(head -n1 "$data/postmaster.pid" | tr -dc 0-9)"
}

rt_pg_start() { # DIR [PREFERRED_PORT]
  local dir; dir=$(rt__absdir "$1") || return 1
  local pref=${2:-} strict=${RT__STRICT:-0} bin port t0
  bin=$(rt__pg_bindir) || return 1
  [[ $dir != *[[:space:]]* ]] || { rt_die "state dir must not contain spaces: $dir"; return 1; }
  local data=$dir/pg/data sock=$dir/sock log=$dir/pg/postgresql.log
  if rt__pg_running "$dir"; then
    port=$(rt_env_get "$dir" RT_PG_PORT)
    rt_env_set "$dir" RT_PG_PORT "$port" RT_PG_URL "postgresql://postgres@127.0.0.1:$port/postgres"
    rt_log "postgresql already running on 127.0.0.1:$port (data $data)"
    return 0
  fi
  t0=$(rt__now_ms)
  port=$(rt__port_for "$dir" RT_PG_PORT "$pref" "$strict") || return 1
  mkdir -p "$dir/pg" "$sock"
  chmod o+x "$dir"  # postgres must reach DIR/pg and DIR/sock
  chown postgres: "$dir/pg" "$sock"
  if ! rt__as_postgres test -w "$dir/pg"; then
    rt_die "user postgres cannot write $dir/pg (a parent directory is not searchable?)"
    return 1
  fi
  if [[ ! -s $data/PG_VERSION ]]; then
    rt__as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      --no-instructions >"$dir/pg/initdb.log" 2>&1 || {
      rt_die "initdb failed:"; sed 's/^/    /' "$dir/pg/initdb.log" >&2; return 1
    }
  fi
  rt_env_set "$dir" RT_STATE_DIR "$dir" RT_PG_BIN "$bin" RT_PG_DATA "$data" RT_PG_SOCK "$sock" \
    RT_PG_LOG "$log" RT_PG_PORT "$port" RT_PG_URL "postgresql://postgres@127.0.0.1:$port/postgres"
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $sock -c max_connections=300"
  opts+=" -c shared_buffers=256MB -c synchronous_commit=on -c fsync=on"
  touch "$log" && chown postgres: "$log"
  if ! rt__as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "$opts" start >/dev/null; then
    rt_die "postgresql did not start on port $port; last lines of $log:"
    tail -n 20 "$log" | sed 's/^/    /' >&2
    return 1
  fi
  rt_log "postgresql ready on 127.0.0.1:$port in $(rt__secs_since "$t0") s (data $data)"
}

rt_pg_stop() { # DIR
  local dir; dir=$(rt__absdir "$1") || return 1
  rt__pg_running "$dir" || return 0
  local bin data t0; bin=$(rt_env_get "$dir" RT_PG_BIN); data=$(rt_env_get "$dir" RT_PG_DATA)
  t0=$(rt__now_ms)
  rt__as_postgres "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || {
    rt_log "pg_ctl stop failed; killing the postmaster"
    rt__kill_pid "$(head -n1 "$data/postmaster.pid" | tr -dc 0-9)" 10
  }
  rt_log "postgresql on port $(rt_env_get "$dir" RT_PG_PORT) stopped in $(rt__secs_since "$t0") s"
}

rt_pg_restart() { # DIR: same port, same data
  rt_pg_stop "$1" && RT__STRICT=1 rt_pg_start "$1"
}

# --- NATS (JetStream) -----------------------------------------------------------------

rt__nats_running() { # DIR
  rt_pid_alive "$(rt_pidfile_pid "$(rt_env_get "$1" RT_NATS_PID_FILE)")"
}

rt__nats_healthy() { # MONPORT
  curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null
}

rt_nats_start() { # DIR [PREFERRED_PORT [PREFERRED_MONPORT]]
  local dir; dir=$(rt__absdir "$1") || return 1
  local strict=${RT__STRICT:-0} port mon t0 bin pid i
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  [[ -x $bin ]] || { rt_die "nats-server not found (apt-get install nats-server)"; return 1; }
  local ndir=$dir/nats
  local pidf=$ndir/nats-server.pid logf=$ndir/nats-server.log
  if rt__nats_running "$dir"; then
    port=$(rt_env_get "$dir" RT_NATS_PORT); mon=$(rt_env_get "$dir" RT_NATS_MON_PORT)
    rt_env_set "$dir" RT_NATS_PORT "$port" RT_NATS_MON_PORT "$mon" RT_NATS_URL "nats://127.0.0.1:$port"
    rt_log "nats-server already running on 127.0.0.1:$port (monitor $mon)"
    return 0
  fi
  t0=$(rt__now_ms)
  port=$(rt__port_for "$dir" RT_NATS_PORT "${2:-}" "$strict") || return 1
  mon=$(rt__port_for "$dir" RT_NATS_MON_PORT "${3:-}" "$strict") || return 1
  mkdir -p "$ndir/js"
  rm -f "$pidf"
  rt_env_set "$dir" RT_STATE_DIR "$dir" RT_NATS_PORT "$port" RT_NATS_MON_PORT "$mon" \
    RT_NATS_URL "nats://127.0.0.1:$port" RT_NATS_PID_FILE "$pidf" RT_NATS_LOG "$logf" \
    RT_NATS_STORE "$ndir/js"
  setsid "$bin" -a 127.0.0.1 -p "$port" -m "$mon" -js -sd "$ndir/js" -P "$pidf" -l "$logf" \
    </dev/null >>"$ndir/stdout.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 600; i++)); do # 30 s
    rt__nats_healthy "$mon" && break
    if ! rt_pid_alive "$pid"; then
      rt_die "nats-server exited during start-up; last lines of $logf:"
      tail -n 20 "$logf" "$ndir/stdout.log" 2>/dev/null | sed 's/^/    /' >&2
      return 1
    fi
    sleep 0.05
  done
  rt__nats_healthy "$mon" || { rt_die "nats-server not healthy after 30 s (see $logf)"; return 1; }
  rt_log "nats-server (JetStream) ready on 127.0.0.1:$port, monitor $mon, in $(rt__secs_since "$t0") s"
}

rt_nats_stop() { # DIR
  local dir; dir=$(rt__absdir "$1") || return 1
  local pid t0; pid=$(rt_pidfile_pid "$(rt_env_get "$dir" RT_NATS_PID_FILE)")
  rt_pid_alive "$pid" || return 0
  t0=$(rt__now_ms)
  rt__kill_pid "$pid" 30 || { rt_die "nats-server pid $pid would not die"; return 1; }
  rm -f "$(rt_env_get "$dir" RT_NATS_PID_FILE)"
  rt_log "nats-server on port $(rt_env_get "$dir" RT_NATS_PORT) stopped in $(rt__secs_since "$t0") s"
}

rt_nats_restart() { # DIR: same ports, same JetStream store
  rt_nats_stop "$1" && RT__STRICT=1 rt_nats_start "$1"
}

# --- RabbitMQ -------------------------------------------------------------------------

# Fills the array RT__RENV with the environment of DIR's RabbitMQ node, shared by the
# server and by rabbitmqctl (same HOME = same Erlang cookie, same private epmd).
rt__rabbit_env() { # DIR
  local dir=$1 rdir=$1/rabbit
  local port dist epmd node
  port=$(rt_env_get "$dir" RT_AMQP_PORT); dist=$(rt_env_get "$dir" RT_RABBIT_DIST_PORT)
  epmd=$(rt_env_get "$dir" RT_RABBIT_EPMD_PORT); node=$(rt_env_get "$dir" RT_RABBIT_NODENAME)
  [[ -n $port && -n $node ]] || { rt_die "no RabbitMQ instance recorded in $dir/env"; return 1; }
  RT__RENV=(
    "HOME=$rdir/home"
    "RABBITMQ_CONF_ENV_FILE=$rdir/rabbitmq-env.conf"
    "RABBITMQ_NODENAME=$node"
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
    "RABBITMQ_NODE_PORT=$port"
    "RABBITMQ_DIST_PORT=$dist"
    "ERL_EPMD_ADDRESS=127.0.0.1"
    "ERL_EPMD_PORT=$epmd"
    "RABBITMQ_MNESIA_BASE=$rdir/mnesia"
    "RABBITMQ_LOG_BASE=$rdir/log"
    "RABBITMQ_PID_FILE=$rdir/rabbitmq.pid"
    "RABBITMQ_CONFIG_FILE=$rdir/rabbitmq.conf"
    "RABBITMQ_ENABLED_PLUGINS_FILE=$rdir/enabled_plugins"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
  )
}

rt_rabbitmqctl() { # DIR ARGS...: rabbitmqctl against DIR's node
  local dir; dir=$(rt__absdir "$1") || return 1; shift
  local -a RT__RENV; rt__rabbit_env "$dir" || return 1
  (cd / && env "${RT__RENV[@]}" "$RT_RABBIT_BIN/rabbitmqctl" "$@")
}

rt__rabbit_running() { # DIR
  rt_pid_alive "$(rt_pidfile_pid "$(rt_env_get "$1" RT_RABBIT_PID_FILE)")"
}

# Starts the node in the background and returns at once; rt__rabbit_wait waits for it.
rt__rabbit_launch() { # DIR [PREFERRED_PORT]
  local dir; dir=$(rt__absdir "$1") || return 1
  local strict=${RT__STRICT:-0} rdir=$dir/rabbit port dist epmd node
  [[ -x $RT_RABBIT_BIN/rabbitmq-server ]] || { rt_die "rabbitmq-server not found (apt-get install rabbitmq-server)"; return 1; }
  if rt__rabbit_running "$dir"; then
    RT__RABBIT_T0=; return 0
  fi
  RT__RABBIT_T0=$(rt__now_ms)
  port=$(rt__port_for "$dir" RT_AMQP_PORT "${2:-}" "$strict") || return 1
  # The distribution port must be explicit: the default (port + 20000) overflows for
  # high ports and the server then exits 0 after failing.
  dist=$(rt__port_for "$dir" RT_RABBIT_DIST_PORT "" "$strict") || return 1
  epmd=$(rt__port_for "$dir" RT_RABBIT_EPMD_PORT "" "$strict") || return 1
  node=$(rt_env_get "$dir" RT_RABBIT_NODENAME)
  node=${node:-rabbit-$port@localhost} # fixed at first start: the data dir is named after it
  mkdir -p "$rdir/home" "$rdir/mnesia" "$rdir/log"
  : >"$rdir/rabbitmq-env.conf"    # keep /etc/rabbitmq/rabbitmq-env.conf out of it
  printf '[].\n' >"$rdir/enabled_plugins"
  cat >"$rdir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
  rm -f "$rdir/rabbitmq.pid"
  rt_env_set "$dir" RT_STATE_DIR "$dir" RT_AMQP_PORT "$port" RT_RABBIT_DIST_PORT "$dist" \
    RT_RABBIT_EPMD_PORT "$epmd" RT_RABBIT_NODENAME "$node" RT_RABBIT_DIR "$rdir" \
    RT_RABBIT_PID_FILE "$rdir/rabbitmq.pid" RT_AMQP_URL "amqp://guest:guest@127.0.0.1:$port/"
  local -a RT__RENV; rt__rabbit_env "$dir" || return 1
  (cd / && exec setsid env "${RT__RENV[@]}" "$RT_RABBIT_BIN/rabbitmq-server" \
    </dev/null >>"$rdir/stdout.log" 2>&1) &
}

rt__rabbit_wait() { # DIR
  local dir; dir=$(rt__absdir "$1") || return 1
  local port rdir=$dir/rabbit
  port=$(rt_env_get "$dir" RT_AMQP_PORT)
  if [[ -z ${RT__RABBIT_T0:-} ]]; then
    rt_env_set "$dir" RT_AMQP_PORT "$port" RT_AMQP_URL "amqp://guest:guest@127.0.0.1:$port/"
    rt_log "rabbitmq already running on 127.0.0.1:$port (node $(rt_env_get "$dir" RT_RABBIT_NODENAME))"
    return 0
  fi
  # Readiness is `rabbitmqctl wait`, never the server's exit code. It can read the pid file
  # while the server is still writing it and give up ("garbage_in_pid_file"): asked again.
  local tries=0
  until rt_rabbitmqctl "$dir" wait --timeout 60 "$rdir/rabbitmq.pid" >"$rdir/wait.log" 2>&1; do
    if grep -q garbage_in_pid_file "$rdir/wait.log" && ((++tries < 20)); then
      sleep 0.2
      continue
    fi
    rt_die "rabbitmq did not start on port $port; rabbitmqctl wait said:"
    sed 's/^/    /' "$rdir/wait.log" >&2
    tail -n 20 "$rdir/stdout.log" 2>/dev/null | sed 's/^/    /' >&2
    return 1
  done
  # Proves the listener is up and guest/guest may log in from 127.0.0.1 (loopback_users).
  local i
  for ((i = 0; i < 100; i++)); do
    rt_amqp_check "amqp://guest:guest@127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.1
  done
  rt_amqp_check "amqp://guest:guest@127.0.0.1:$port/" || { rt_die "rabbitmq up but AMQP login as guest failed"; return 1; }
  rt_log "rabbitmq ready on 127.0.0.1:$port (node $(rt_env_get "$dir" RT_RABBIT_NODENAME)) in $(rt__secs_since "$RT__RABBIT_T0") s"
}

rt_rabbit_start() { # DIR [PREFERRED_PORT]
  rt__rabbit_launch "$@" && rt__rabbit_wait "$1"
}

rt_rabbit_stop() { # DIR
  local dir; dir=$(rt__absdir "$1") || return 1
  local pidf pid epmd t0
  pidf=$(rt_env_get "$dir" RT_RABBIT_PID_FILE)
  [[ -n $pidf ]] || return 0
  pid=$(rt_pidfile_pid "$pidf")
  epmd=$(rt_env_get "$dir" RT_RABBIT_EPMD_PORT)
  t0=$(rt__now_ms)
  if rt_pid_alive "$pid"; then
    if ! rt_rabbitmqctl "$dir" shutdown --timeout 60 >"$dir/rabbit/shutdown.log" 2>&1; then
      rt_log "rabbitmqctl shutdown failed; signalling pid $pid"
    fi
    rt__kill_pid "$pid" 30 || { rt_die "rabbitmq pid $pid would not die"; return 1; }
    rt_log "rabbitmq on port $(rt_env_get "$dir" RT_AMQP_PORT) stopped in $(rt__secs_since "$t0") s"
  fi
  # epmd outlives the node.
  if [[ -n $epmd ]] && rt_tcp_open "$epmd"; then
    ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$epmd" -kill >/dev/null 2>&1 || true
  fi
  rm -f "$pidf"
}

rt_rabbit_restart() { # DIR: same ports, same node name and data
  rt_rabbit_stop "$1" && RT__STRICT=1 rt_rabbit_start "$1"
}

# AMQP 0-9-1 handshake as a client: login with the URL's user/password and open its
# vhost. Exit 0 when the broker accepts both.
rt_amqp_check() { # URL
  "$RT_PY" - "$1" <<'PY'
import socket, struct, sys
from urllib.parse import urlparse, unquote
u = urlparse(sys.argv[1])
user, pw = unquote(u.username or "guest"), unquote(u.password or "guest")
vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
try:
    s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), timeout=10)
except OSError as e:
    sys.exit("amqp: cannot connect: %s" % e)
def recvn(n):
    b = b""
    while len(b) < n:
        try:
            c = s.recv(n - len(b))
        except OSError:
            c = b""
        if not c:
            sys.exit("amqp: connection closed by the broker (login refused?)")
        b += c
    return b
def method():
    while True:
        typ, _ch, size = struct.unpack(">BHI", recvn(7))
        payload = recvn(size); recvn(1)
        if typ == 1:
            cls, meth = struct.unpack(">HH", payload[:4])
            if (cls, meth) == (10, 50):
                code, = struct.unpack(">H", payload[4:6])
                sys.exit("amqp: broker closed the connection: %d %s" % (code, payload[7:7 + payload[6]].decode(errors="replace")))
            return cls, meth, payload[4:]
def send(cls, meth, args):
    p = struct.pack(">HH", cls, meth) + args
    s.sendall(struct.pack(">BHI", 1, 0, len(p)) + p + b"\xce")
sstr = lambda b: bytes([len(b)]) + b
lstr = lambda b: struct.pack(">I", len(b)) + b
s.sendall(b"AMQP\x00\x00\x09\x01")
assert method()[:2] == (10, 10), "expected connection.start"
send(10, 11, lstr(b"") + sstr(b"PLAIN") + lstr(b"\0" + user.encode() + b"\0" + pw.encode()) + sstr(b"en_US"))
cls, meth, args = method()
assert (cls, meth) == (10, 30), "expected connection.tune"
chmax, fmax, _hb = struct.unpack(">HIH", args[:8])
send(10, 31, struct.pack(">HIH", chmax, fmax, 0))
send(10, 40, sstr(vhost.encode()) + sstr(b"") + b"\x00")
assert method()[:2] == (10, 41), "expected connection.open-ok"
send(10, 50, struct.pack(">H", 200) + sstr(b"bye") + struct.pack(">HH", 0, 0))
method()
PY
}

# --- all three ------------------------------------------------------------------------

rt_services_start() { # DIR [PGPORT NATSPORT NATSMONPORT AMQPPORT]  (preferred ports)
  local dir; dir=$(rt__absdir "$1") || return 1
  local t0; t0=$(rt__now_ms)
  rt__rabbit_launch "$dir" "${5:-}" || return 1 # boots while the others start
  rt_pg_start "$dir" "${2:-}" || return 1
  rt_nats_start "$dir" "${3:-}" "${4:-}" || return 1
  rt__rabbit_wait "$dir" || return 1
  rt_log "all services up in $(rt__secs_since "$t0") s; state in $dir/env"
}

rt_services_stop() { # DIR: stops what runs; failures are reported, all are tried
  local dir rc=0; dir=$(rt__absdir "$1") || return 1
  [[ -f $dir/env ]] || return 0
  rt_rabbit_stop "$dir" || rc=1
  rt_nats_stop "$dir" || rc=1
  rt_pg_stop "$dir" || rc=1
  return $rc
}

rt_services_status() { # DIR: one line per service
  local dir; dir=$(rt__absdir "$1") || return 1
  local pid port state
  pid=$(rt_env_get "$dir" RT_PG_DATA); pid=$( [[ -n $pid && -f $pid/postmaster.pid ]] && head -n1 "$pid/postmaster.pid" || true)
  port=$(rt_env_get "$dir" RT_PG_PORT)
  rt__pg_running "$dir" && state=running || { state=stopped; pid=; }
  printf '%-11s %-8s pid %-8s 127.0.0.1:%-6s %s\n' postgresql "$state" "${pid:--}" "${port:--}" "$(rt_env_get "$dir" RT_PG_URL)"
  pid=$(rt_pidfile_pid "$(rt_env_get "$dir" RT_NATS_PID_FILE)")
  port=$(rt_env_get "$dir" RT_NATS_PORT)
  rt__nats_running "$dir" && state=running || { state=stopped; pid=; }
  printf '%-11s %-8s pid %-8s 127.0.0.1:%-6s %s (monitor :%s)\n' nats "$state" "${pid:--}" "${port:--}" "$(rt_env_get "$dir" RT_NATS_URL)" "$(rt_env_get "$dir" RT_NATS_MON_PORT)"
  pid=$(rt_pidfile_pid "$(rt_env_get "$dir" RT_RABBIT_PID_FILE)")
  port=$(rt_env_get "$dir" RT_AMQP_PORT)
  rt__rabbit_running "$dir" && state=running || { state=stopped; pid=; }
  printf '%-11s %-8s pid %-8s 127.0.0.1:%-6s %s (node %s)\n' rabbitmq "$state" "${pid:--}" "${port:--}" "$(rt_env_get "$dir" RT_AMQP_URL)" "$(rt_env_get "$dir" RT_RABBIT_NODENAME)"
}
