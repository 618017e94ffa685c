"""What the tests and the benchmarks share: fakes of the real-time path, a private JACK server, small corpora."""
