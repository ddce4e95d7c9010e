//! A fixture plugin with the root module of driver ABI 1 (four calls, no
//! `call`): what a plugin built by an older docker-mount looks like. The
//! loader must refuse it with a one-line reason, not abi_stable's dump.

use abi_stable::library::RootModule;
use abi_stable::package_version_strings;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use abi_stable::{export_root_module, StableAbi};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = DriverModRef)))]
#[sabi(missing_field(panic))]
pub struct DriverMod {
    pub info: extern "C" fn() -> RResult<RString, RString>,
    pub detect: extern "C" fn(root: RSlice<'_, u8>) -> RResult<u8, RString>,
    pub layer: extern "C" fn(root: RSlice<'_, u8>, id: RStr<'_>) -> RResult<RString, RString>,
    #[sabi(last_prefix_field)]
    pub layers: extern "C" fn(root: RSlice<'_, u8>) -> RResult<RString, RString>,
}

impl RootModule for DriverModRef {
    abi_stable::declare_root_module_statics! {DriverModRef}
    const BASE_NAME: &'static str = "docker_mount_driver";
    const NAME: &'static str = "docker_mount_driver";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

extern "C" fn info() -> RResult<RString, RString> {
    RResult::RErr("old".into())
}
extern "C" fn detect(_root: RSlice<'_, u8>) -> RResult<u8, RString> {
    RResult::ROk(0)
}
extern "C" fn layer(_root: RSlice<'_, u8>, _id: RStr<'_>) -> RResult<RString, RString> {
    RResult::RErr("old".into())
}
extern "C" fn layers(_root: RSlice<'_, u8>) -> RResult<RString, RString> {
    RResult::RErr("old".into())
}

#[export_root_module]
pub fn module() -> DriverModRef {
    DriverMod {
        info,
        detect,
        layer,
        layers,
    }
    .leak_into_prefix()
}
