#!/bin/sh
# /dm-init of the zfs VM: the scenario lives on the work disk (vdb), so the
# cached root disk never changes.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /work
mount -t ext4 /dev/vdb /work || { echo "no work disk"; echo o > /proc/sysrq-trigger; }
exec /bin/bash /work/scenario.sh
