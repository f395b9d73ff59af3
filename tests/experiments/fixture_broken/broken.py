SCENARIO = "not a scenario"
