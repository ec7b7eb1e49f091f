//! Seeded feed simulator. STUB: the simulator helper replaces this.
