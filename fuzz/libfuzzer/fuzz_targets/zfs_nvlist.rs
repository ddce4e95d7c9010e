#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| docker_mount_fuzz_targets::zfs_nvlist(data));
