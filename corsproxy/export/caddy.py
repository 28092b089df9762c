TARGET = "caddy"
TESTED_ON = "?"
DEVIATIONS = ()

def render(plan):
    raise NotImplementedError
