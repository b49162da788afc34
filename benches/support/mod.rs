//! What more than one bench sets up the same way: an engine of one shard, unpinned, with the
//! default key store's HSM added, so a bench measures one key path without another shard's
//! scheduling in its numbers.

use kmscks::engine::{Control, Engine, EngineConfig, HsmSlot};

/// One unpinned shard serving the default key store.
pub(crate) fn one_shard_engine() -> Engine {
    // Invariant: the default configuration with one shard is a valid engine configuration,
    // and adding the default HSM to a fresh engine cannot conflict.
    let engine = Engine::new(EngineConfig {
        shards: 1,
        pin_workers: false,
        ..EngineConfig::default()
    })
    .expect("a one-shard engine starts");
    engine
        .apply(&[Control::AddHsm {
            hsm: HsmSlot::Default,
        }])
        .expect("the default HSM is added to a fresh engine");
    engine
}
