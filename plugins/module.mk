# plugins/: every directory with C sources becomes build/plugins/<dir>.so
PLUGINS += $(sort $(patsubst plugins/%/,%,$(dir $(wildcard plugins/*/*.c))))
