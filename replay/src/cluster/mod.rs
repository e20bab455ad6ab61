//! Redis Cluster: key slots ([`slot`]), where a command's keys are ([`keys`]), a destination's
//! slot map ([`topology`]) and the router that sends each command to the master owning its
//! slot ([`route`]); a source's nodes, shards and roles ([`nodes`]). All pure; the connections
//! are the `dest` writers (one per master) and the source link.

pub mod commands;
pub mod keys;
pub mod nodes;
pub mod route;
pub mod slot;
pub mod topology;

pub use route::{RouteError, Router};
pub use topology::{NodeAddr, Topology};
