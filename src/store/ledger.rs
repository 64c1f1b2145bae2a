//! Binds the generic store to the domain (filled in once `domain` lands).
