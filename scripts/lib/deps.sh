# shellcheck shell=bash
# scripts/lib/deps.sh — install the Debian packages ratchet needs to build, test and run
# its local stack. Sourced by scripts/dev.sh; `rt_deps_install` is a fast no-op when
# everything is already installed.

RT_DEPS_PACKAGES=(
  build-essential cmake pkg-config
  librabbitmq-dev libnats-dev libjansson-dev libpq-dev libssl-dev libcurl4-openssl-dev
  libmicrohttpd-dev libcmocka-dev
  postgresql nats-server rabbitmq-server
  tzdata clang libclang-rt-14-dev
  python3 python3-jsonschema python3-prometheus-client python3-cryptography python3-yaml
  curl ca-certificates
  python3-botocore # tests/integration/s3_sigv4_server.py checks AWS SigV4 signatures with AWS's own signer
  python3-aiosmtpd # tests/integration/smtp_sink.py: the email step's test SMTP server
  openssl # the email test's self-signed STARTTLS certificate
  chromium # tests/integration/t_dashboard.sh drives it with playwright-core (npm, node >= 20)
)

# Prints the packages of RT_DEPS_PACKAGES (or of the arguments) that are not installed.
rt_deps_missing() {
  local pkgs=("$@")
  ((${#pkgs[@]})) || pkgs=("${RT_DEPS_PACKAGES[@]}")
  local -A ok=()
  local name status
  # One dpkg-query for all; unknown packages only produce a message on stderr.
  while read -r name status; do
    [[ $status == installed ]] && ok[$name]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null || true)
  local p
  for p in "${pkgs[@]}"; do
    [[ -n ${ok[$p]:-} ]] || echo "$p"
  done
}

rt_deps_install() {
  local -; set -o pipefail
  local prefix=${RT_LOG_PREFIX:-deps:}
  local missing
  mapfile -t missing < <(rt_deps_missing "$@")
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if ((EUID != 0)); then
    echo "$prefix missing Debian packages: ${missing[*]}" >&2
    echo "$prefix install them as root with:" >&2
    echo "$prefix   sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  # Installing postgresql or rabbitmq-server must not start system services on the
  # default ports (there is no systemd here; invoke-rc.d honours policy-rc.d).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# created by ratchet scripts/lib/deps.sh: never start services from apt\nexit 101\n' \
      >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    echo "$prefix created /usr/sbin/policy-rc.d (exit 101) so apt starts no services" >&2
  fi
  echo "$prefix installing: ${missing[*]}" >&2
  local t0=$SECONDS
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  export DEBIAN_FRONTEND=noninteractive
  if ! "${apt[@]}" update -qq 2>&1 | sed "s/^/$prefix   /" >&2; then
    # An update that fails for one mirror may still leave usable lists; try the install.
    echo "$prefix apt-get update reported errors; trying the install anyway" >&2
  fi
  "${apt[@]}" install -y -qq "${missing[@]}" 2>&1 | sed "s/^/$prefix   /" >&2 || {
    echo "$prefix apt-get install failed for: ${missing[*]}" >&2
    return 1
  }
  mapfile -t missing < <(rt_deps_missing "$@")
  if ((${#missing[@]})); then
    echo "$prefix still missing after install: ${missing[*]}" >&2
    return 1
  fi
  echo "$prefix packages installed in $((SECONDS - t0)) s" >&2
}
