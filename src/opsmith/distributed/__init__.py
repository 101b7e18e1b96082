"""`executor: celery`: the engine drives runs where it always did; workers make the step calls.

dispatch   the driver's side: DispatchingTools (a ToolProvider), DistributedExecutor, the factory
worker     `opsmith worker`: claim a call, make it through the usual providers, commit its outcome
store      the `step_calls` and `workers` tables (StepCallStore)
broker     Celery over Redis (Broker): a message carries a call's key and nothing else
outcome    a call's outcome as stored, and back as the engine's result or error
"""
