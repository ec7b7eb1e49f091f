//! Field validation shared by every decoder. STUB: the formats helper replaces this.
