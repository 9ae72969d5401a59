#!/bin/bash
# usage: bench.sh ROUNDS VARIANT... (variant = profile dir name: release, release-fat, release-thin)
set -u
cd /work/wt-release
OUT=/tmp/relprof/raw
LOAD=target/release/glance-load
ROUNDS=$1; shift
cpu() { awk '{print $14+$15}' /proc/$1/stat; }   # utime+stime in clock ticks
for r in $(seq ${START:-1} $ROUNDS); do
  for v in "$@"; do
    BIN=target/$v/glance-api
    D=$(mktemp -d /tmp/relprof/data.XXXX)
    P=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    $BIN --data-dir $D --bind 127.0.0.1:$P serve > $D/server.log 2>&1 &
    SP=$!
    for i in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:$P/versions && break; sleep 0.1; done
    echo "[$(date -u +%T)] round $r $v pid $SP port $P load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/runs.log
    for sc in metadata upload; do
      extra=""; [ $sc = upload ] && extra="--size 4MiB"
      c0=$(cpu $SP)
      $LOAD --url http://127.0.0.1:$P --scenario $sc --concurrency 16 --duration 10s --warmup 2s $extra \
        --quiet --json $OUT/$v-$sc-r$r.json 2> $OUT/$v-$sc-r$r.txt
      rc=$?
      c1=$(cpu $SP)
      echo "  $sc rc=$rc server_cpu_s=$(echo "($c1-$c0)/$(getconf CLK_TCK)" | bc -l | cut -c1-6) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/runs.log
      [ $rc = 0 ] || tail -5 $D/server.log
    done
    kill $SP; wait $SP 2>/dev/null
    rm -rf $D
  done
done
