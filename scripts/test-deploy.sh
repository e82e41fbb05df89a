#!/usr/bin/env bash
# make test-deploy: the docker compose deployment, for real. Installs Docker's
# engine from Debian packages and starts dockerd when absent; on a machine
# that cannot pull images (no registry) builds the Debian base images with
# debootstrap and a Prometheus image from Debian's package; builds the
# Distillery image, brings the stack up, and drives it from the host:
# submit, scale workers up and down, restart the coordinator mid-job (the
# named volume keeps the data), export and check, check that Prometheus
# scrapes every Distillery service; then the same stack locked down
# (deploy/compose.secure.yaml: TLS and tokens from Docker secrets, made here
# with openssl), refusing calls without a token and over plaintext and
# serving a job through TLS; then the same compose file as a Docker Swarm
# stack (`docker swarm init`, `docker stack deploy`), scaling workers with
# `docker service scale` and killing a worker task and the coordinator task
# mid-job; and tear down.
#
# The image used here holds binaries built on the host (this is Debian 12,
# as the image is) on top of the Dockerfile's `runtime` stage: compiling the
# whole project again inside docker would take most of the CI budget on a
# 2-core machine. The Dockerfile's full build stage is the same CMake build.
# Grafana is left out: Debian 12 has no grafana package and no registry is
# reachable; the compose file's grafana service is unchanged for real use.
#
# Usage: scripts/test-deploy.sh [BUILD_DIR]   (binaries in BUILD_DIR/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${1:-build}
PROJECT=distillery-deploy-test
WORK=$(mktemp -d /tmp/distillery-deploy.XXXXXX)
SECONDS=0
log() { echo "test-deploy [${SECONDS}s]: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "need root or sudo"
  SUDO="sudo"
fi

# --- Docker's engine, docker-compose v1 and debootstrap from Debian ---------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # Package installs must not start services here (containers, CI).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  $SUDO rm -f "$policy"
  trap - EXIT
fi
# Debian's docker.io puts its client in /usr/bin; prefer it over any other.
export PATH=/usr/bin:/usr/sbin:$PATH
DC="docker-compose -p $PROJECT -f docker-compose.yml -f deploy/compose.test.yaml"

if ! docker info >/dev/null 2>&1; then
  # overlay2 where the kernel allows it (not inside every container), else
  # vfs, which works everywhere but copies each layer.
  for driver in overlay2 vfs; do
    log "starting dockerd (storage driver $driver)"
    pid=$($SUDO sh -c "dockerd --storage-driver=$driver >/var/log/dockerd.log 2>&1 & echo \$!")
    for _ in $(seq 60); do
      docker info >/dev/null 2>&1 && break
      $SUDO kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    docker info >/dev/null 2>&1 && break
    $SUDO kill "$pid" 2>/dev/null || true   # the dockerd started just above
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log; fail "dockerd did not start"; }
fi
log "docker $(docker version --format '{{.Server.Version}}') storage $(docker info --format '{{.Driver}}')"

# --- Base images: pulled when a registry answers, else debootstrapped -------
mirror() {
  local m
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}
base_image() {  # TAG
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  if timeout 20 docker pull -q "$1" >/dev/null 2>&1; then return 0; fi
  local rootfs=$WORK/rootfs
  if [ ! -d "$rootfs/usr" ]; then
    log "debootstrap bookworm (minbase) from $(mirror)"
    $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$(mirror)" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  fi
  log "importing $1"
  $SUDO tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$1" >/dev/null
}
base_image debian:bookworm
base_image debian:bookworm-slim

# --- Images -----------------------------------------------------------------
[ -x "$BUILD_DIR/bin/distillery-coordinator" ] || fail "no binaries in $BUILD_DIR/bin (make build)"
log "building distillery-runtime:dev (Dockerfile target runtime)"
docker build -q -f deploy/Dockerfile --target runtime -t distillery-runtime:dev . >/dev/null
ctx=$WORK/image
mkdir -p "$ctx/bin"
for b in distillery distillery-coordinator distillery-worker teacher-sim; do
  cp "$BUILD_DIR/bin/$b" "$ctx/bin/"
done
strip "$ctx"/bin/* 2>/dev/null || true
printf 'FROM distillery-runtime:dev\nCOPY bin/ /usr/local/bin/\n' >"$ctx/Dockerfile"
docker build -q -t distillery:dev "$ctx" >/dev/null
log "building distillery-prometheus:debian (Debian's prometheus package)"
docker build -q -f deploy/prometheus/Dockerfile.debian -t distillery-prometheus:debian deploy/prometheus >/dev/null

# --- The stack --------------------------------------------------------------
CLI=("$BUILD_DIR/bin/distillery" --coordinator 127.0.0.1:7070)
teardown() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    $DC ps || true
    $DC logs --tail 30 || true
  fi
  $DC down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $rc
}
trap teardown EXIT
$DC down -v --remove-orphans >/dev/null 2>&1 || true
log "docker-compose up (coordinator, 2 workers, teacher-sim, prometheus)"
$DC up -d --no-build --scale worker=2 coordinator worker teacher-sim prometheus

wait_healthy() {
  local id
  id=$($DC ps -q coordinator)
  for _ in $(seq 120); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ] && return 0
    sleep 0.5
  done
  fail "coordinator not healthy"
}
wait_healthy
"${CLI[@]}" health >/dev/null || fail "distillery health from the host"
log "coordinator healthy"

# A job long enough to change things under it (the test profile allows 2
# requests at once per worker): 150 prompts x 2 samples.
prompts=$WORK/prompts.jsonl
for i in $(seq 1 150); do
  printf '{"id":"p%02d","prompt":"Deploy test question %d: what is %d + %d?"}\n' "$i" "$i" "$i" "$i"
done >"$prompts"
job=$("${CLI[@]}" submit "$prompts" --teacher sim --model sim-reasoner --samples 2 | tail -1) \
  || fail "submit"
log "submitted job $job"
# Tasks done so far; fails when the job has already finished, since the
# changes below must happen mid-job.
progress() {
  local done
  done=$("${CLI[@]}" status "$job" --json | /usr/bin/python3 -c \
    'import json,sys; c=json.load(sys.stdin); print(c["tasks_done"])')
  [ "$done" -lt 300 ] || fail "the job finished before the change ($done tasks)"
  echo "$done"
}

sleep 2
n=$(progress)
$DC up -d --no-build --no-recreate --scale worker=4 worker
log "scaled to 4 workers at $n tasks done"
sleep 2
n=$(progress)
$DC up -d --no-build --no-recreate --scale worker=1 worker
log "scaled to 1 worker at $n tasks done"
sleep 1
n=$(progress)
$DC restart -t 10 coordinator
wait_healthy
log "coordinator restarted at $n tasks done (now $(progress))"
$DC up -d --no-build --no-recreate --scale worker=3 worker

"${CLI[@]}" watch "$job" >/dev/null || fail "watch"
out=$WORK/export.jsonl
"${CLI[@]}" export "$job" --format raw --include-duplicates --out "$out" || fail "export"
lines=$(wc -l <"$out")
[ "$lines" -eq 300 ] || fail "export has $lines records, want 300"
/usr/bin/python3 - "$out" <<'EOF' || fail "export records"
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["state"] == "done", r
    seen.add((r["prompt_id"], r["sample"]))
assert len(seen) == 300, len(seen)
EOF
log "export: 300 records, every prompt and sample once"

# Prometheus (published on 127.0.0.1:9090) scrapes the coordinator and every
# worker, found by DNS.
nworkers=$($DC ps -q worker | wc -l)
for _ in $(seq 60); do
  up=$(curl -s 'http://127.0.0.1:9090/api/v1/query?query=up' || true)
  if /usr/bin/python3 - "$up" "$nworkers" <<'EOF'; then break; fi
import json, sys
r = json.loads(sys.argv[1] or "{}").get("data", {}).get("result", [])
jobs = [(x["metric"]["job"], x["value"][1]) for x in r]
c = [v for j, v in jobs if j == "distillery-coordinator"]
w = [v for j, v in jobs if j == "distillery-worker"]
sys.exit(0 if c == ["1"] and len(w) == int(sys.argv[2]) and set(w) == {"1"} else 1)
EOF
  sleep 1
done
/usr/bin/python3 - "$up" "$nworkers" <<'EOF' || fail "prometheus targets: $up"
import json, sys
r = json.loads(sys.argv[1] or "{}").get("data", {}).get("result", [])
up = sorted((x["metric"]["job"], x["metric"]["instance"], x["value"][1]) for x in r)
for t in up: print("  up", *t, file=sys.stderr)
c = [v for j, i, v in up if j == "distillery-coordinator"]
w = [v for j, i, v in up if j == "distillery-worker"]
sys.exit(0 if c == ["1"] and len(w) == int(sys.argv[2]) and set(w) == {"1"} else 1)
EOF
log "prometheus: coordinator and $nworkers workers up"

$DC down -v --remove-orphans >/dev/null

# --- Locked down: TLS and tokens from Docker secrets (deploy/compose.secure.yaml)
export DISTILLERY_SECRETS=$WORK/secrets
mkdir -p "$DISTILLERY_SECRETS"
(
  cd "$DISTILLERY_SECRETS"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout coordinator.key -out coordinator.csr -subj /CN=coordinator 2>/dev/null
  printf 'subjectAltName=DNS:coordinator\n' >san.ext
  openssl x509 -req -in coordinator.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out coordinator.crt -days 2 -extfile san.ext 2>/dev/null
  head -c 24 /dev/urandom | base64 >client.token
  head -c 24 /dev/urandom | base64 >worker.token
  chmod 644 ./*   # a throwaway test CA; the image's user must read them
)
DC="$DC -f deploy/compose.secure.yaml"
log "docker-compose up with TLS and tokens (deploy/compose.secure.yaml)"
$DC up -d --no-build --scale worker=2 coordinator worker teacher-sim
wait_healthy
SECURE=("$BUILD_DIR/bin/distillery" --coordinator 127.0.0.1:7070 --tls-ca "$DISTILLERY_SECRETS/ca.crt"
        --tls-server-name coordinator)
if "${SECURE[@]}" jobs >/dev/null 2>"$WORK/err"; then fail "a call without a token was served"; fi
grep -q "missing bearer token" "$WORK/err" || fail "no token: $(cat "$WORK/err")"
if "${CLI[@]}" jobs >/dev/null 2>&1; then fail "plaintext was served"; fi
SECURE+=(--token-file "$DISTILLERY_SECRETS/client.token")
head -20 "$prompts" >"$WORK/few.jsonl"
job=$("${SECURE[@]}" submit "$WORK/few.jsonl" --teacher sim --model sim-small | tail -1) || fail "secure submit"
"${SECURE[@]}" watch "$job" >/dev/null || fail "secure watch"
"${SECURE[@]}" export "$job" --format raw --include-duplicates --out "$WORK/secure.jsonl" || fail "secure export"
[ "$(wc -l <"$WORK/secure.jsonl")" -eq 20 ] || fail "secure export has $(wc -l <"$WORK/secure.jsonl") records"
log "TLS and tokens: refused without token and over plaintext; 20 records through TLS"
$DC down -v --remove-orphans >/dev/null
# --- Docker Swarm: the same compose file as a stack -----------------------
# A single-node swarm is a real swarm: the services are Swarm services,
# scaled with `docker service scale` and restarted by Swarm when a task
# dies. A worker task and the coordinator task are killed mid-job (SIGKILL,
# no drain, no saved lease table); the job must still end with every prompt
# answered once.
STACK=distillery-swarm-test
created_swarm=0
swarm_down() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  for _ in $(seq 120); do
    [ -z "$(docker ps -aq -f "label=com.docker.stack.namespace=$STACK")" ] &&
      ! docker network inspect "${STACK}_default" >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker volume rm "${STACK}_coordinator-data" "${STACK}_prometheus-data" >/dev/null 2>&1 || true
  if [ $created_swarm -eq 1 ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
}
swarm_teardown() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    docker stack ps --no-trunc "$STACK" 2>/dev/null | head -30 || true
    for s in coordinator worker teacher-sim; do
      docker service logs --tail 20 "${STACK}_$s" 2>&1 | tail -20 || true
    done
  fi
  swarm_down
  rm -rf "$WORK"
  exit $rc
}
trap swarm_teardown EXIT
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init"
  created_swarm=1
fi
log "docker stack deploy (swarm $(docker info --format '{{.Swarm.NodeID}}'))"
# deploy/compose.swarm.yaml: DNS round-robin and a host-mode port, since
# this kernel (like many container hosts) has no IPVS for Swarm's VIPs.
docker stack deploy --resolve-image never -c docker-compose.yml \
  -c deploy/compose.swarm.yaml -c deploy/compose.test.yaml \
  -c deploy/compose.swarm-test.yaml "$STACK" >"$WORK/stack.log" 2>&1 \
  || { cat "$WORK/stack.log"; fail "docker stack deploy"; }
# The coordinator's task: its container on this node.
coordinator_container() {
  docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_coordinator" | head -1
}
swarm_healthy() {
  for _ in $(seq 240); do
    id=$(coordinator_container)
    if [ -n "$id" ] &&
       [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ] &&
       "${CLI[@]}" health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  fail "swarm: coordinator not healthy and reachable on 127.0.0.1:7070"
}
swarm_healthy
log "swarm: coordinator healthy"
job=$("${CLI[@]}" submit "$prompts" --teacher sim --model sim-reasoner --samples 2 | tail -1) \
  || fail "swarm submit"
log "swarm: submitted job $job"
# Tasks done once at least $1 are; fails when the job ends first, or does
# not get there: each change below must happen mid-job.
progress_past() {
  local want=$1 done
  for _ in $(seq 480); do
    done=$("${CLI[@]}" status "$job" --json 2>/dev/null | /usr/bin/python3 -c \
      'import json,sys; print(json.load(sys.stdin)["tasks_done"])' 2>/dev/null || echo 0)
    [ "$done" -lt 300 ] || fail "swarm: the job finished before the change ($done tasks)"
    if [ "$done" -ge "$want" ]; then echo "$done"; return 0; fi
    sleep 0.25
  done
  fail "swarm: the job did not reach $want tasks done"
}
n=$(progress_past 10)
docker service scale -d "${STACK}_worker=4" >/dev/null || fail "docker service scale"
log "swarm: scaled to 4 workers at $n tasks done"
n=$(progress_past $((n + 20)))
victim=$(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_worker" | head -1)
[ -n "$victim" ] || fail "swarm: no worker container"
docker kill "$victim" >/dev/null
log "swarm: killed worker task $victim at $n tasks done"
n=$(progress_past $((n + 20)))
victim=$(coordinator_container)
docker kill "$victim" >/dev/null
log "swarm: killed the coordinator task $victim at $n tasks done"
# Swarm starts a new coordinator task, on the same named volume.
for _ in $(seq 240); do
  [ -n "$(coordinator_container)" ] && [ "$(coordinator_container)" != "$victim" ] && break
  sleep 0.5
done
swarm_healthy
log "swarm: coordinator task restarted by Swarm"
"${CLI[@]}" watch "$job" >/dev/null || fail "swarm watch"
running=$(docker service ls --filter "name=${STACK}_worker" --format '{{.Replicas}}')
log "swarm: job done; workers $running"
"${CLI[@]}" export "$job" --format raw --include-duplicates --out "$WORK/swarm.jsonl" || fail "swarm export"
/usr/bin/python3 - "$WORK/swarm.jsonl" <<'PY' || fail "swarm export records"
import json, sys
seen = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["state"] == "done", r
    key = (r["prompt_id"], r["sample"])
    assert key not in seen, f"{key} exported twice"
    seen[key] = r["content"]
    # The sim quotes the prompt: each answer is its own prompt's.
    n = int(r["prompt_id"][1:])
    assert f"question {n}:" in r["content"], (r["prompt_id"], r["content"][:200])
assert len(seen) == 300, len(seen)
PY
log "swarm: export has 300 records, every prompt and sample once"
swarm_down
trap - EXIT
rm -rf "$WORK"
log "PASS (${SECONDS}s)"
