# apps/: replicated applications (null, kv).
CORE_SRCS += $(wildcard apps/*.c)
