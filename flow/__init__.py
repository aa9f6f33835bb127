"""The tool flow: Verilog generation and lint (build.py), synthesis and place-and-route
(synth.py), the README port map (port_map.py), and where the simulators are (tools.py).

Layers: model <- hdl <- flow <- tb; nothing here is imported by hdl/ or model/."""
