DROP TABLE ttp_tags;
