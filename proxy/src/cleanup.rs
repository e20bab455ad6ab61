//! `replicant cleanup`: removes replicant's state keys from a destination after an abandoned
//! run (exactly-once delivery records the source offset there; see `replay::dest::once`).

use std::time::Duration;

use replay::dest::once::StateKeys;

use crate::apply;
use crate::cli::CleanupArgs;
use crate::config::Side;
use crate::fatal::Fatal;

pub async fn run(args: &CleanupArgs) -> Result<(), Fatal> {
    let ep = apply::endpoint(&args.target, Side::Target, &args.target_side.flags())?;
    let timeout = Duration::from_secs(args.connect_timeout.max(1));
    let nodes = apply::key_nodes(&ep, timeout).await?;
    let keys = StateKeys::new(&args.state_key_prefix);
    let removed = apply::remove_state_keys(&nodes, &keys, true, timeout)
        .await
        .map_err(Fatal::target)?;
    tracing::info!(removed, nodes = nodes.len(), prefix = %args.state_key_prefix, "state keys removed from the destination");
    println!("removed {removed} state keys");
    Ok(())
}
