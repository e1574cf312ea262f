DROP TABLE ship_instance;
