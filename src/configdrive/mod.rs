//! The OpenStack config-drive v2 model.
