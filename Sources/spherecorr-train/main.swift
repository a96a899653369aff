print("spherecorr-train")
