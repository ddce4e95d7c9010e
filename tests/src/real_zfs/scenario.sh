#!/bin/bash
# The scenario of the real zfs pools (tests/src/real_zfs.rs), run by
# /dm-init as PID 1 of a Debian trixie VM (linux 6.12, OpenZFS 2.3 from
# zfs-dkms, docker.io 26). Disks: vda the root (read-only snapshot),
# vdb this work disk (ext4; the oracle goes to /work/oracle), vdc the
# docker pool, vdd+vde the mirror pool, vdf+vdg+vdh the raidz1 pool.
# Every step is timed in oracle/steps.txt; the last line is DONE or FAILED.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 DOCKER_BUILDKIT=0
O=/work/oracle
mkdir -p $O/datasets
step() { echo "STEP $1 $(cut -d' ' -f1 /proc/uptime)" | tee -a $O/steps.txt; }
finish() {
    trap - ERR
    set +eE
    echo "$1 $(cut -d' ' -f1 /proc/uptime)" | tee -a $O/steps.txt
    exec 9>&-
    sync
    umount /work || mount -o remount,ro /work
    sync
    echo o > /proc/sysrq-trigger
    sleep 600
}
trap 'finish "FAILED line $LINENO: $BASH_COMMAND"' ERR
# The trace goes to the work disk: the serial console is slow under TCG.
exec 9> $O/xtrace.log
BASH_XTRACEFD=9
set -eE -x

step mounts
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts || true
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
hostname dm-zfs-vm
# zpool waits for udev to announce the partitions it makes on whole disks.
/usr/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle -t 60
ip link set lo up || true
uname -a > $O/uname.txt

step modprobe
modprobe zfs
cat /sys/module/zfs/version > $O/zfs-module-version.txt
zfs version > $O/zfs-version.txt

step pools
# The docker pool: one whole disk (zpool partitions it: GPT, vdev in part 1).
zpool create -f -o ashift=12 -o cachefile=none -O mountpoint=none -O atime=off dmpool /dev/vdc
zfs create -o mountpoint=/var/lib/docker -o compression=lz4 -o xattr=sa -o acltype=posix dmpool/docker
zfs create -o mountpoint=/srv/zstd -o compression=zstd -o xattr=dir dmpool/zstd
zfs create -o mountpoint=/srv/lzjb -o compression=lzjb dmpool/lzjb
zfs create -o mountpoint=/srv/zle -o compression=zle dmpool/zle
# The mirror pool: clean export at the end; gzip, large blocks, large dnodes, encryption.
zpool create -f -o ashift=12 -o cachefile=none -O mountpoint=none dmmirror mirror /dev/vdd /dev/vde
zfs create -o mountpoint=/srv/mirror-gzip -o compression=gzip -o xattr=sa -o dnodesize=auto dmmirror/gzip
zfs create -o mountpoint=/srv/mirror-big -o compression=off -o recordsize=1M dmmirror/big
echo 'dm-test-passphrase' | zfs create -o mountpoint=/srv/mirror-secret -o encryption=on -o keyformat=passphrase -o keylocation=prompt dmmirror/secret
# The raidz1 pool: left imported (a crash) like the docker pool.
zpool create -f -o ashift=12 -o cachefile=none -O mountpoint=none dmraidz raidz1 /dev/vdf /dev/vdg /dev/vdh
zfs create -o mountpoint=/srv/raidz-lz4 -o compression=lz4 dmraidz/lz4
zfs create -o mountpoint=/srv/raidz-zstd19 -o compression=zstd-19 -o xattr=sa dmraidz/zstd19

step files
fill() { # $1: dir — the same awkward tree in every non-docker dataset
    d=$1
    mkdir -p $d/dir/sub $d/many
    echo hello > $d/dir/hello.txt
    seq 1 100000 > $d/seq.txt
    head -c 3000000 /dev/urandom > $d/random.bin
    head -c 2000000 /dev/zero > $d/zeros.bin
    printf t > $d/tiny
    : > $d/empty
    dd if=/dev/urandom of=$d/sparse bs=4096 count=1 seek=1000 status=none
    for i in $(seq 1 600); do echo $i > $d/many/f-$i; done
    echo long > $d/dir/a-name-that-is-longer-than-fifty-characters-so-the-directory-is-a-fat-zap
    ln -s dir/hello.txt $d/symlink
    ln $d/seq.txt $d/seq-hardlink
    mkfifo $d/fifo
    mknod $d/null c 1 3
    echo s > $d/suid && chmod 4755 $d/suid
    echo o > $d/owned && chown 1234:5678 $d/owned
    echo u > "$d/ünïcødé name"
    setfattr -n user.dm.small -v small-value $d/dir/hello.txt
    setfattr -n user.dm.big -v "$(head -c 3000 /dev/zero | tr '\0' x)" $d/dir/hello.txt
    touch -h -d '2001-02-03 04:05:06.123456789' $d/tiny
}
for d in /srv/zstd /srv/lzjb /srv/zle /srv/mirror-gzip /srv/mirror-big /srv/mirror-secret /srv/raidz-lz4 /srv/raidz-zstd19; do
    fill $d
done

step docker-start
dockerd --storage-driver zfs --iptables=false --ip6tables=false --bridge=none \
    --data-root /var/lib/docker > $O/dockerd.log 2>&1 &
DOCKERD=$!
for i in $(seq 1 120); do docker version > /dev/null 2>&1 && break; sleep 1; done
docker version --format '{{json .}}' > $O/docker-version.json

step import
mkdir -p /tmp/bb/bin /tmp/bb/etc /tmp/bb/tmp /tmp/bb/dev /tmp/bb/proc /tmp/bb/sys
cp /usr/bin/busybox /tmp/bb/bin/busybox
for a in $(/tmp/bb/bin/busybox --list); do [ -e /tmp/bb/bin/$a ] || ln -s busybox /tmp/bb/bin/$a; done
echo 'root:x:0:0:root:/root:/bin/sh' > /tmp/bb/etc/passwd
echo 'root:x:0:' > /tmp/bb/etc/group
tar --numeric-owner -C /tmp/bb -cf /tmp/bb.tar .
docker import /tmp/bb.tar dm-base:1

step build
mkdir -p /tmp/ctx
cat > /tmp/ctx/Dockerfile <<'DOCKERFILE'
FROM dm-base:1
RUN mkdir -p /data/keep /data/gone /data/many && echo hello > /data/keep/a.txt && echo bye > /data/gone/b.txt && echo x > /data/rm.txt && echo base > /etc/motd
RUN rm -rf /data/gone /data/rm.txt /bin/vi && mv /data/keep/a.txt /data/keep/renamed.txt && ln /data/keep/renamed.txt /data/hardlink && mkfifo /data/fifo && echo s > /data/suid && chmod 4755 /data/suid && chmod 2750 /data/keep && ln -s keep/renamed.txt /data/symlink && mknod /data/null c 1 3 && echo o > /data/owned && chown 1234:5678 /data/owned
RUN i=0; while [ $i -lt 300 ]; do echo $i > /data/many/file-$i; i=$((i+1)); done && echo long > /data/a-name-that-is-longer-than-fifty-characters-so-the-dir-is-a-fat-zap && dd if=/dev/urandom of=/data/big bs=65536 count=48 && head -c 3000000 /dev/zero > /data/zeros && seq 1 200000 > /data/seq.txt && printf t > /data/tiny && : > /data/empty && dd if=/dev/urandom of=/data/sparse bs=4096 count=1 seek=1000 && echo u > "/data/ünïcødé name" && touch -d '2001-02-03 04:05:06' /data/tiny
DOCKERFILE
docker build --network none -t dm-app:1 /tmp/ctx > $O/build.log 2>&1
printf 'FROM dm-base:1\nRUN echo gone > /gone.txt\n' > /tmp/ctx/Dockerfile
docker build --network none -t dm-gone:1 /tmp/ctx >> $O/build.log 2>&1
# A deep image: 110 COPY layers (no container runs) on top of dm-base.
mkdir -p /tmp/deepctx
echo 'FROM dm-base:1' > /tmp/deepctx/Dockerfile
for i in $(seq 1 110); do echo $i > /tmp/deepctx/f$i; echo "COPY f$i /deep/f$i" >> /tmp/deepctx/Dockerfile; done
docker build --network none -t dm-deep:1 /tmp/deepctx > $O/build-deep.log 2>&1

step containers
docker run -d --network none --name running dm-app:1 sh -c 'echo changed > /data/keep/renamed.txt; rm /data/seq.txt; mkdir /new-dir; echo n > /new-dir/f; exec sleep 100000'
docker run --network none --name exited dm-app:1 sh -c 'rm -r /data/many; echo e > /data/exited.txt; mv /data/big /data/big-moved; rm /bin/ls'
docker create --network none --name created dm-app:1 true
docker run --network none --name deep dm-deep:1 sh -c 'echo d > /deep/changed; rm /deep/f1'
docker run --network none --name removed-later dm-gone:1 sh -c 'echo r > /removed.txt'
sleep 3

step oracle-at-snapshot
mkdir -p $O/at-snapshot
docker ps -a --no-trunc --format '{{json .}}' > $O/at-snapshot/ps.jsonl
docker images -a --no-trunc --format '{{json .}}' > $O/at-snapshot/images.jsonl
docker diff removed-later > $O/at-snapshot/diff-removed-later.txt
docker export removed-later > $O/at-snapshot/export-removed-later.tar
step admin-snapshot
zfs snapshot dmpool/docker@admin-before-cleanup
zfs snapshot dmpool/zstd@admin
step cleanup
docker rm removed-later > $O/cleanup.log 2>&1
docker rmi dm-gone:1 >> $O/cleanup.log 2>&1

step oracle
docker ps -a --no-trunc --format '{{json .}}' > $O/ps.jsonl
docker images -a --no-trunc --format '{{json .}}' > $O/images.jsonl
docker inspect $(docker ps -aq --no-trunc) > $O/inspect.json
docker image inspect $(docker images -aq --no-trunc) > $O/image-inspect.json
docker info --format '{{json .}}' > $O/docker-info.json
for c in running exited created deep; do
    docker export $c > $O/export-$c.tar
    docker diff $c > $O/diff-$c.txt
done
docker inspect --format '{{.Id}} {{.Name}} {{.GraphDriver.Data.Dataset}}' $(docker ps -aq --no-trunc) > $O/container-datasets.txt
zfs list -t all -H -p -o name,type,origin,mountpoint,guid,createtxg,objsetid,compression,xattr,mounted > $O/zfs-list.tsv
zfs get -H -p all > $O/zfs-get.tsv
zpool get -H -p all > $O/zpool-get.tsv
zpool status -P -v > $O/zpool-status.txt
zpool get -H -o name,property,value all dmpool | grep feature@ > $O/features.tsv
for d in vdc vdd vdf; do zdb -l /dev/${d}1 > $O/zdb-label-$d.txt 2>&1 || true; done
zdb -C dmpool > $O/zdb-config.txt 2>&1 || true
zdb -d dmpool > $O/zdb-datasets.txt 2>&1 || true
# Each unmounted filesystem (image layers, the snapshot's twins, the
# non-docker datasets) as a tar of its tree, read through a read-only mount.
step dataset-tars
mkdir -p /mnt/ds
zfs list -H -p -o name,mounted,mountpoint,keystatus -t filesystem | while IFS=$'\t' read -r name mounted mp ks; do
    f=$O/datasets/$(echo "$name" | tr / _).tar
    if [ "$mounted" = yes ] && [ "$mp" != legacy ] && [ "$mp" != /var/lib/docker ]; then
        tar --numeric-owner --xattrs --xattrs-include='*' -cf "$f" -C "$mp" .
    elif [ "$mp" = legacy ] && [ "$mounted" = no ]; then
        mount -t zfs -o ro "$name" /mnt/ds && tar --numeric-owner --xattrs --xattrs-include='*' -cf "$f" -C /mnt/ds . ; umount /mnt/ds || true
    fi
done
mount -t zfs -o ro dmpool/docker@admin-before-cleanup /mnt/ds
find /mnt/ds -xdev -printf '%y %m %U %G %s %P\n' | sort -k6 > $O/at-snapshot/docker-root-find.txt
umount /mnt/ds

step crash
kill -9 $DOCKERD
zpool export dmmirror
zpool sync
sync
ls -la $O > $O/listing.txt
finish DONE
