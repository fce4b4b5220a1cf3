"""Taking webhook deliveries in and carrying out what they ask: record and queue them (accept),
process them (deliveries), and the registered repositories whose secrets sign them."""
