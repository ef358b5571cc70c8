"""What we know of a shopper from events alone: state, its store, the state stage, the features."""
