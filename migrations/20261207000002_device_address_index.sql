-- Address searches by network (`q=10.0.1.0/24`, `mgmt_ip <<= '10.0.1.0/24'`) and the list's
-- sort by address, within one customer: the planner turns `<<=` into a range on this index.
CREATE INDEX devices_customer_address_idx ON devices (customer_id, mgmt_ip, id);
