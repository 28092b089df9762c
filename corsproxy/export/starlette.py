TARGET = "starlette"
TESTED_ON = "?"
DEVIATIONS = ()

def render(plan):
    raise NotImplementedError
