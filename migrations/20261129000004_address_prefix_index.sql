-- The device search `q` also matches the start of a management address
-- (`host(mgmt_ip) LIKE '10.0.1.%'`). Without an index that walked every device in hostname
-- order (94 ms at 100,000 devices); with this one the planner ORs it with the hostname
-- trigram index (1.2 ms).
CREATE INDEX devices_address_prefix_idx ON devices (host(mgmt_ip) text_pattern_ops);
