//! The docker metadata model: what docker wrote about containers, images,
//! layers and volumes. Read-only, bounded, and every item carries its file.

pub mod catalog;
pub mod container;
pub mod ids;
pub mod image;
pub mod layerdb;
pub mod legacy;
pub mod tarsplit;
pub mod volume;
