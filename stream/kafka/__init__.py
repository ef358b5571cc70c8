"""The Kafka edge: clients, the consumer-group source, the acknowledging sink, transactions, stall watch."""
