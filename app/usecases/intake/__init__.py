"""Taking webhook deliveries in and carrying out what they ask: record and queue them (accept),
process them (deliveries), decide whether a PR's code may be built (trust), and the registered
repositories whose secrets sign them."""
