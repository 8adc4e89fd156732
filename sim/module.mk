# sim/: the deterministic in-process network and host for plugin tests.
SIM_SRCS += $(wildcard sim/*.c)
