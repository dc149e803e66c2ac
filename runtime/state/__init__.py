"""The runtime state model: what generated code and the executor share.

``program`` holds ``CompiledProgram`` (what the compiler produces: tasks, instances, variables,
code objects), ``ProgramState`` (one running instance of it: the objects generated code works on)
and ``Accessor``/``PathError`` (process-image paths); ``support`` holds the scan context
(``ScanContext``, ``TaskInfo``) and the helpers generated code calls (``NAMESPACE``, ``STFault``,
``ScanAborted``); ``faults`` turns an exception out of generated code into a positioned runtime fault.

The compiler builds a ``CompiledProgram``; the executor, the drivers and the dashboard use this
package and the compiler's published type model (``compiler.st_types``), never the compiler's
internals. tests/test_layering.py keeps it so.
"""
