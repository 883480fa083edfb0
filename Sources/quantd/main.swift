print("quantd")
