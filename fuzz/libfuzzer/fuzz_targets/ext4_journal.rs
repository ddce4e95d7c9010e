#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| docker_mount_fuzz_targets::ext4_journal(data));
