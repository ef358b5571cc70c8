"""Files in and out: the recorded-file source and the file, list and archive sinks."""
