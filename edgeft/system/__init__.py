"""System model of DEFT (paper section II): what computation and upload cost.

Every piece of cost math lives here once and is imported elsewhere.
"""
